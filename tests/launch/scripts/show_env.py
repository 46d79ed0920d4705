"""Prints what a launched worker sees: its directory and the variables a launch is about."""

import os
import sys


def say(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write: the processes of a pod share its output
    sys.stdout.flush()


names = ["MY_SETTING", "DEVSERVER_BACKEND", "PYTHONUNBUFFERED", "GROUP_RANK", "RANK", "WORLD_SIZE",
         "LOCAL_WORLD_SIZE"]
say(f"cwd={os.getcwd()}")
for name in names:
    say(f"{name}={os.environ.get(name)}")

"""Every worker says it is ready, then sleeps (a launch to cancel)."""

import os
import sys
import time


def say(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write: the processes of a pod share its output
    sys.stdout.flush()


say(f"node {os.environ['GROUP_RANK']} worker {os.environ['RANK']} ready (tag {sys.argv[-1]})")
time.sleep(120)
say("not stopped")

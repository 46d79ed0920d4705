"""Node rank 1 prints and exits 3; node rank 0 sleeps a minute (it must be stopped by the launch)."""

import os
import sys
import time


def say(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write: the processes of a pod share its output
    sys.stdout.flush()


node = int(os.environ["GROUP_RANK"])
say(f"node {node} worker {os.environ['RANK']} started (tag {sys.argv[-1]})")
if node == 1:
    time.sleep(1.0)
    say("rank 1 gives up: simulated failure")
    sys.exit(3)
time.sleep(60)
say("rank 0 was not stopped")

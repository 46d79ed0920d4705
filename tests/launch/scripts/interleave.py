"""Every worker prints many lines, each in two writes (text, then the newline), all at the same time.

Unlabelled, the processes of a pod share one pipe, and such lines came out joined: "A...B...\n\n".
"""

import os
import sys
import time

rank = os.environ["RANK"]
for i in range(40):
    sys.stdout.write(f"LINE rank={rank} i={i} ")
    sys.stdout.flush()
    time.sleep(0.002)
    sys.stdout.write("end\n")
    sys.stdout.flush()

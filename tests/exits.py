"""A program that ends in each of the ways tests/test_forkserver.py holds the fork server to ending as Python
does: python -m tests.exits WAY."""
import atexit
import sys
import threading
import time

way = sys.argv[1]
print("out:", sys.argv, flush=False)
print("err: é", file=sys.stderr)
if way == "atexit":
    atexit.register(print, "at exit")
elif way == "thread":  # a thread that is no daemon outlives the module: Python waits for it before it exits
    threading.Thread(target=lambda: (time.sleep(0.2), print("thread done"))).start()
elif way == "raise":
    raise ValueError("raised")
elif way == "interrupt":
    raise KeyboardInterrupt
elif way == "exit-text":
    sys.exit("a message")
elif way == "exit-code":
    sys.exit(3)
elif way == "state":  # what it was started with: environment (but the BLAS variable the server sets for mlp_lm)
    import json
    import os
    import random
    print(json.dumps({k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}, sort_keys=True))
    print(random.random())
elif way == "sleep":
    time.sleep(60)
elif way == "closed-stdout":
    sys.stdout.write("x" * 10)
    import os
    os.close(1)
print("end of", way)

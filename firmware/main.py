# camwatch main.py: start the app. Ctrl-C in the REPL stops it.
#
# Until a deploy's app confirms that it runs (camwatch.update.confirm, after
# confirm_s of serving), each start is counted in /.previous/.starts; boot.py
# rolls the deploy back after 3 starts that did not confirm. An app that
# fails to start (an exception, at import or later) is restarted after a
# pause, so that count goes on; Ctrl-C during the pause gives the REPL.
import os

try:
    with open(".previous/.starts") as f:
        starts = int(f.read())
    with open(".previous/.starts.new", "w") as f:
        f.write(str(starts + 1))
    os.rename(".previous/.starts.new", ".previous/.starts")
    del starts
except (OSError, ValueError):  # no deploy waiting to be confirmed
    pass

try:
    import camwatch.app

    camwatch.app.run()
except Exception as exc:  # not KeyboardInterrupt: Ctrl-C stops the app
    import sys
    import time

    sys.print_exception(exc)
    print("camwatch: the app stopped; restarting in 5 s (Ctrl-C for the REPL)")
    time.sleep(5)
    import machine

    try:
        machine.reset()  # as the reset button does
    except AttributeError:  # the virtual board: its supervisor restarts the VM it ends
        os.system("kill -TERM $PPID")

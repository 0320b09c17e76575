# camwatch main.py: start the app. Ctrl-C in the REPL stops it.
#
# An app that fails (an exception, at import or later) is restarted by
# deployguard after a pause, and the failure counted against a deploy that
# waits to be kept: after 3, boot.py rolls it back. Kept this short: its
# code stays in the heap while the app runs.
try:
    import camwatch.app

    camwatch.app.run()
except Exception as exc:  # not KeyboardInterrupt: Ctrl-C stops the app
    import deployguard

    deployguard.failed(exc)

# camwatch main.py: start the app. Ctrl-C in the REPL stops it.
import camwatch.app

camwatch.app.run()

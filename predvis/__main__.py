from predvis.cli import entry

entry()

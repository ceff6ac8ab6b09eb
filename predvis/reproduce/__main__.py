import sys

from predvis.reproduce import main

sys.exit(main())

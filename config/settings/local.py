"""Local development (`make run`, `manage.py`): DEBUG on unless set."""
import os

os.environ.setdefault("DEBUG", "true")

from config.settings.base import *  # noqa: E402,F401,F403

# The embedded default keeps its SQLite file (and later the sandbox keys)
# under var/.
VAR_DIR.mkdir(exist_ok=True)  # noqa: F405

"""The one django-environ reader every settings module uses.

Values come from the process environment first, then from `.env` at the
project root when it exists (never committed; `.env.example` documents every
variable).
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

_env_file = BASE_DIR / ".env"
if _env_file.exists():
    # read_env never overrides a variable that is already set.
    environ.Env.read_env(str(_env_file))

"""(Makes docs/conftest.py importable as docs.conftest, apart from tests/conftest.py.)"""

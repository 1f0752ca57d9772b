"""The web console in a real browser: the driver and page helpers the
console's tests share (tests/integration/test_console.py), and the script
that takes the screenshots in docs/console/ (python -m tests.browser.screenshots)."""

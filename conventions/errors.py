"""User mistakes, as one exception family: every command prints a `UserError` as one `error:` line on stderr
and exits `EXIT_USER`; anything else is a bug and keeps its traceback (exit 1). It lives in the bottom layer
(`conventions`) so that every package can raise it without importing another layer.

`UserError` is not a `ValueError`: an `except ValueError` written for a parser or numpy must never swallow
a user's mistake on its way to `run_main`."""

EXIT_BUG = 1  # Python's own status for an uncaught exception: a traceback
EXIT_USER = 2  # a `UserError`: one `error:` line
EXIT_FINDINGS = 3  # `hpo.audit --fail-on-findings` with suspicious findings: not a bug, not bad input
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM


class UserError(Exception):
    """Input, settings or an environment that the user can fix; the message says what to change."""

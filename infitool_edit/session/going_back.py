"""What `infitool-edit rewind` and `fork` say: which version the file now
equals, which branch is current, and that the file on disk changed."""

from __future__ import annotations

from infitool_edit.session.editing import EditingSession, Executed


def went_back(session: EditingSession, executed: Executed, *, forked: bool) -> str:
    """One line for the writer after a rewind or a fork."""
    branch = session.history.current_branch
    name = session.draft_path.name
    changed = "changed on disk" if executed.edit is not None and (
        executed.edit.start != executed.edit.end or executed.edit.text) else "unchanged on disk"
    if forked:
        return (f"v{executed.version} starts branch {branch} from v{executed.back_to}; "
                f"{name} now equals v{executed.back_to} ({changed})")
    return (f"v{executed.version} on branch {branch}: {name} now equals v{executed.back_to} "
            f"({changed}); nothing was lost, later versions stay in the log")

"""The agent runtime: the loop that makes a model edit through commands
(``runner``), its backends (``scripted``, ``ssm``, ``remote``), the grammar
mask (``constrain``), the stored stream (``stream``) and the events the
views consume (``events``). See docs/agent.md.

Only torch-free names are exported here, so importing the package (the TUI
does, for its events) does not load the model code.
"""

from infitool_edit.agent.runner import AgentError, Runner
from infitool_edit.agent.scripted import ScriptedBackend

__all__ = ["AgentError", "Runner", "ScriptedBackend"]

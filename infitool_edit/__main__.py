"""`python -m infitool_edit` is the `infitool-edit` command."""

from infitool_edit.cli import main

main()

"""`python -m infitool_edit` is the `infitool-edit` command."""

from infitool_edit.launch import main

main()

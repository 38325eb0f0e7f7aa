"""`python -m arena_eval.cli`: the same as the `arena-eval` command."""

from . import main

main()

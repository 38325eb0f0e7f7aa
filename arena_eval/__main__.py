"""`python -m arena_eval`: the `arena-eval` command."""

from .launch import main

main()

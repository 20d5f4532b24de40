"""`python -m transformer train | sample | graph`: the same as the `minigrad-gpt` command."""

from transformer.cli import main

raise SystemExit(main())

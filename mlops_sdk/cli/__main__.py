"""``python -m mlops_sdk.cli``: the same as the ``mlops`` command."""

from mlops_sdk.cli import main

if __name__ == "__main__":
    main()

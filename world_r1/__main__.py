"""``python -m world_r1`` and the ``world-r1`` script: a clean console first, then the command line."""

from world_r1.console import quiet_third_party_noise

quiet_third_party_noise()  # before the imports that print them

from world_r1.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    main()

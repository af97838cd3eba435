"""foundation-bot: announce a foundation's news everywhere and answer the community's questions."""

__version__ = "0.1.0"

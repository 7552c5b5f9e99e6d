"""Racing warm-started searches as Ray Tune trials: candidates, trials, leaderboard, report."""

from raynas.race.config import RaceConfig

__all__ = ["RaceConfig"]

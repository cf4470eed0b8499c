"""The application's job classes (Laravel's app/Jobs).

A name in allowed_jobs.yaml maps to ``jobs.<Name>`` unless its entry gives a
``class:`` path, so every class listed here is importable as ``jobs.<Name>``.
"""

from jobs.export import ExportJob
from jobs.sample import SampleJob

__all__ = ["ExportJob", "SampleJob"]

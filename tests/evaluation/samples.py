"""The evaluation samples the tests use: six SQuAD articles and three FinanceBench filings, read in place from
../shared (CI has it: a missing file fails the test)."""

from __future__ import annotations

from core.settings import Settings
from tests.helpers import SHARED

SQUAD = SHARED / "eval" / "squad-dev"
FINANCEBENCH = SHARED / "eval" / "financebench"
# Six short articles, each with a follow-up pair in evaluation/followups.jsonl.
SAMPLE_ARTICLES = (
    "Amazon_rainforest",
    "Sky_(United_Kingdom)",
    "Victoria_(Australia)",
    "Jacksonville,_Florida",
    "Intergovernmental_Panel_on_Climate_Change",
    "Black_Death",
)
SAMPLE_QUESTIONS = 150
# Three of the smallest filings, with 9 of the 40 questions between them.
SAMPLE_FILINGS = (
    "ULTABEAUTY_2023Q4_EARNINGS.pdf",
    "AMCOR_2023Q4_EARNINGS.pdf",
    "JOHNSON_JOHNSON_2023_8K_dated-2023-08-30.pdf",
)


def eval_settings() -> Settings:
    """The default settings, answering with the extractive answerer whatever the environment says."""
    return Settings(llm_provider="extractive", llm_fallbacks="")

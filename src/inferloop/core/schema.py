"""Column names and allowed values of the raw transaction data contract.

Every module refers to columns through these constants so that a renamed column is a
one-line change and a user's own data can be mapped onto them (see :mod:`inferloop.data.ingest`).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGE_BAND",
    "AGE_BANDS",
    "ALLOWED_CATEGORIES",
    "AMOUNT",
    "CATEGORICAL_FEATURE_COLUMNS",
    "CHANNEL",
    "CHANNELS",
    "CUSTOMER_ID",
    "DECISION",
    "FRAUD_SCENARIO",
    "ID_COLUMNS",
    "LABEL_AVAILABLE_AT",
    "LABEL_COLUMNS",
    "MERCHANT_CATEGORIES",
    "MERCHANT_CATEGORY",
    "MODEL_NAME",
    "MODEL_VERSION",
    "REGION",
    "REGIONS",
    "REJECT_REASON",
    "SCENARIO_CODES",
    "SCORE",
    "SCORED_AT",
    "SCORING_COLUMNS",
    "SENSITIVE_COLUMNS",
    "TARGET",
    "TERMINAL_ID",
    "TIMESTAMP",
    "TRANSACTION_ID",
]


TRANSACTION_ID: Final = "transaction_id"
TIMESTAMP: Final = "timestamp"
CUSTOMER_ID: Final = "customer_id"
TERMINAL_ID: Final = "terminal_id"
AMOUNT: Final = "amount"
CHANNEL: Final = "channel"
MERCHANT_CATEGORY: Final = "merchant_category"
AGE_BAND: Final = "age_band"
REGION: Final = "region"
TARGET: Final = "is_fraud"
LABEL_AVAILABLE_AT: Final = "label_available_at"
FRAUD_SCENARIO: Final = "fraud_scenario"

#: Columns that identify a transaction; they must never influence a score.
ID_COLUMNS: Final = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)
#: Sensitive attributes: used for fairness evaluation, never as model features.
SENSITIVE_COLUMNS: Final = (AGE_BAND, REGION)
#: Categorical columns the model may use as features.
CATEGORICAL_FEATURE_COLUMNS: Final = (CHANNEL, MERCHANT_CATEGORY)

#: Columns a transaction must have to be scored (the model's input signature).
SCORING_COLUMNS: Final = (
    TRANSACTION_ID,
    TIMESTAMP,
    CUSTOMER_ID,
    TERMINAL_ID,
    AMOUNT,
    CHANNEL,
    MERCHANT_CATEGORY,
)
#: Columns required for training data on top of the scoring columns.
LABEL_COLUMNS: Final = (TARGET,)

CHANNELS: Final = ("chip", "contactless", "online")
MERCHANT_CATEGORIES: Final = (
    "grocery",
    "restaurant",
    "fuel",
    "retail",
    "electronics",
    "travel",
    "entertainment",
    "online_services",
)
AGE_BANDS: Final = ("18-25", "26-40", "41-60", "61+")
REGIONS: Final = ("north", "south", "east", "west")

#: Allowed values per categorical column of the contract.
ALLOWED_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    CHANNEL: CHANNELS,
    MERCHANT_CATEGORY: MERCHANT_CATEGORIES,
    AGE_BAND: AGE_BANDS,
    REGION: REGIONS,
}

# Names of the model outputs written next to every prediction.
SCORE: Final = "score"
DECISION: Final = "decision"
MODEL_NAME: Final = "model_name"
MODEL_VERSION: Final = "model_version"
SCORED_AT: Final = "scored_at"
REJECT_REASON: Final = "reject_reason"

#: Fraud scenario codes written by the simulator in :data:`FRAUD_SCENARIO`.
SCENARIO_CODES: Final[dict[str, int]] = {
    "none": 0,
    "high_amount": 1,
    "compromised_terminal": 2,
    "account_takeover": 3,
    "card_testing": 4,
    "new_pattern": 5,
    "camouflaged": 6,
}

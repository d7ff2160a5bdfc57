"""Batch bookkeeping in the record database, for ``BatchWorkflow``: hand out the next item
when its owner has a free slot, and close the batch."""

from __future__ import annotations

from temporalio import activity

from storyreel.contracts import ClaimInput, ClaimResult, CloseBatchInput
from storyreel.db import Records


class BatchActivities:
    def __init__(self, records: Records) -> None:
        self.records = records

    @activity.defn(name="claim_batch_item")
    def claim_batch_item(self, claim: ClaimInput) -> ClaimResult:
        """The item's prepared input with its placeholder record written, or no input while
        the owner runs as many generations as they may (runs on the executor)."""
        return self.records.claim_batch_item(
            claim.batch_id, claim.position, claim.user_id, claim.max_running
        )

    @activity.defn(name="close_batch")
    def close_batch(self, close: CloseBatchInput) -> None:
        self.records.close_batch(close.batch_id, close.status)

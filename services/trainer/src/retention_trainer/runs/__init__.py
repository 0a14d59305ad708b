"""Training runs: one at a time per tenant, triggers coalesced, every outcome recorded.

A trigger (schedule, `RetrainRequested`, `DriftDetected`, `POST /v1/retrain`) asks for a run of
its tenant. With no run of that tenant under way, a run starts; during a run, triggers collect
into one queued follow-up run, which starts when the current one ends (`queue.py`). A run
(`execution.py`):

1. waits until the lake holds every order published to `transactions` before it started
   (`lake_wait`): a `RetrainRequested` from an upload may overtake the upload's orders;
2. reads the tenant's orders from the lake (`lake_read`) and checks there is enough history
   (`RETENTION_MIN_TRAINING_CUSTOMERS`, `RETENTION_MIN_TRAINING_HISTORY_DAYS`; `history.py`),
   else `skipped`;
3. trains and backtests in a worker thread (the pipeline's stages), keeping the champion's
   persona names (its segmenter);
4. puts the bundle through the gate (:mod:`retention_trainer.gate`) and writes the run report
   (:mod:`retention_trainer.run_report`), kept with the record and in the bundle;
5. promoted bundles go into the BentoML store (and to S3 when `RETENTION_MODEL_EXPORT_URL` is
   set) and `ModelPublished` goes out on `model-events`; otherwise `ModelRejected`, with both
   sets of numbers (`promotion.py`).

Rejected candidates are not put in the model store, so `retention-<tenant>:latest` is always a
bundle that was champion; their reports stay with the run record. A pipeline error makes a
`failed` record with its message; the service keeps running.
"""

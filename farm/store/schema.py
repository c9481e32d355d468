"""The store's schema: ordered migrations, and the columns the records map to.

The schema is public (docs/store.md): change it only by appending a migration to
:data:`MIGRATIONS`, never by editing a released one. A test creates a store from the
migrations and checks its ``trials`` and ``jobs`` columns against the records
(:mod:`farm.store.records`).
"""

from __future__ import annotations

#: Ordered schema migrations; version i is MIGRATIONS[i - 1]. Never edit a released entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobs (
        job_id      VARCHAR PRIMARY KEY,
        name        VARCHAR NOT NULL,
        spec        JSON NOT NULL,
        status      VARCHAR NOT NULL,      -- running | completed | interrupted | failed
        created_at  TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        message     VARCHAR                -- why it ended, lost capacity, …
    );
    CREATE TABLE environments (
        env_id      VARCHAR PRIMARY KEY,
        fingerprint JSON NOT NULL,
        first_seen  TIMESTAMP NOT NULL
    );
    CREATE TABLE trials (
        job_id            VARCHAR NOT NULL,
        target            VARCHAR NOT NULL,
        trial_number      INTEGER NOT NULL,   -- per (job, target) study, from 0 (the baseline)
        is_baseline       BOOLEAN NOT NULL,
        candidate_hash    VARCHAR NOT NULL,
        params            JSON NOT NULL,
        status            VARCHAR NOT NULL,   -- completed | failed
        error             VARCHAR,
        node_id           VARCHAR,
        node_host         VARCHAR,
        attempts          INTEGER NOT NULL,
        precision         VARCHAR,            -- requested: fp32 | bf16 | fp16 | int8
        precision_actual  VARCHAR,            -- read back from the runtime
        batch_size        INTEGER,
        threads           INTEGER,
        accuracy          DOUBLE,             -- the job's quality objective (accuracy or fidelity)
        accuracy_drop     DOUBLE,             -- baseline accuracy minus this one
        quality_metric    VARCHAR,            -- name of the metric in `accuracy`
        latency_p50_ms    DOUBLE,
        latency_p90_ms    DOUBLE,
        latency_p95_ms    DOUBLE,
        latency_p99_ms    DOUBLE,
        latency_mean_ms   DOUBLE,
        latency_std_ms    DOUBLE,
        latency_cv        DOUBLE,
        throughput_ips    DOUBLE,             -- images per second
        cost_per_1k_usd   DOUBLE,             -- price_per_hour / (throughput * 3600) * 1000
        price_per_hour_usd DOUBLE,
        n_samples         INTEGER,
        stable            BOOLEAN,
        unstable_reason   VARCHAR,
        cold_ms           DOUBLE,
        compile_s         DOUBLE,
        build_s           DOUBLE,
        measure_s         DOUBLE,
        cache_hit         BOOLEAN,
        artifact_hash     VARCHAR,
        artifact_bytes    BIGINT,
        peak_rss_mb       DOUBLE,
        env_id            VARCHAR,
        contract          JSON,
        feasible          BOOLEAN,
        on_front          BOOLEAN NOT NULL DEFAULT FALSE,
        on_global_front   BOOLEAN NOT NULL DEFAULT FALSE,
        started_at        TIMESTAMP,
        finished_at       TIMESTAMP,
        PRIMARY KEY (job_id, target, trial_number)
    );
    CREATE TABLE latency_samples (
        job_id       VARCHAR NOT NULL,
        target       VARCHAR NOT NULL,
        trial_number INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        latency_ms   DOUBLE NOT NULL
    );
    CREATE TABLE metrics (
        job_id       VARCHAR NOT NULL,
        target       VARCHAR NOT NULL,
        trial_number INTEGER NOT NULL,
        name         VARCHAR NOT NULL,
        value        DOUBLE,
        PRIMARY KEY (job_id, target, trial_number, name)
    );
    """,
    # 2: task layer, fleet, pricing by the hardware that ran, trial-time breakdown.
    """
    ALTER TABLE jobs ADD COLUMN label VARCHAR;
    ALTER TABLE jobs ADD COLUMN task VARCHAR;
    ALTER TABLE trials ADD COLUMN node_ip VARCHAR;
    ALTER TABLE trials ADD COLUMN build_key VARCHAR;
    ALTER TABLE trials ADD COLUMN gpu_model VARCHAR;
    ALTER TABLE trials ADD COLUMN priced_as VARCHAR;
    ALTER TABLE trials ADD COLUMN eval_s DOUBLE;
    ALTER TABLE trials ADD COLUMN trial_s DOUBLE;
    ALTER TABLE trials ADD COLUMN orchestration_s DOUBLE;
    ALTER TABLE trials ADD COLUMN infeasible_reason VARCHAR;
    ALTER TABLE trials ADD COLUMN device_latency_p50_ms DOUBLE;
    ALTER TABLE trials ADD COLUMN device_latency_p95_ms DOUBLE;
    ALTER TABLE trials ADD COLUMN device_memory_mib DOUBLE;
    """,
    # 3: `farm gate`'s confirmations: both artifacts re-measured interleaved (docs/store.md).
    """
    CREATE TABLE confirmations (
        confirmation_id         VARCHAR PRIMARY KEY,
        created_at              TIMESTAMP NOT NULL,
        candidate_job_id        VARCHAR NOT NULL,
        target                  VARCHAR NOT NULL,
        candidate_trial_number  INTEGER NOT NULL,
        baseline_job_id         VARCHAR NOT NULL,
        baseline_trial_number   INTEGER NOT NULL,
        baseline_source         VARCHAR,
        params                  JSON,
        candidate_artifact_hash VARCHAR,
        baseline_artifact_hash  VARCHAR,
        node_id                 VARCHAR,
        node_host               VARCHAR,
        threads                 INTEGER,
        contract                JSON,
        inputs                  VARCHAR,
        statistic               VARCHAR,   -- per-measurement statistic the decision compares
        rounds                  INTEGER,
        orders                  VARCHAR[], -- per round: 'AB' (baseline first) or 'BA'
        baseline_ms             DOUBLE[],  -- per round, the statistic of each side
        candidate_ms            DOUBLE[],
        baseline_p50_ms         DOUBLE[],
        candidate_p50_ms        DOUBLE[],
        unstable_measurements   INTEGER,
        ratio                   DOUBLE,    -- median over rounds of candidate / baseline
        ratio_low               DOUBLE,    -- distribution-free (1 - alpha) interval of it
        ratio_high              DOUBLE,
        decided_by              VARCHAR,   -- 'interval' | 'median at the round cap'
        threshold               DOUBLE,
        alpha                   DOUBLE,
        regression              BOOLEAN,
        store_ratio             DOUBLE,    -- what the store-only test said
        store_p_value           DOUBLE,
        store_regression        BOOLEAN,
        wall_s                  DOUBLE
    );
    """,
    # 4: the primary metric is called what it is. ``quality`` / ``quality_drop`` hold a
    # classifier's accuracy, a detector's mAP, a segmenter's mIoU or a fidelity; ``accuracy`` /
    # ``accuracy_drop`` stay as copies so that SQL written before the rename keeps working.
    """
    ALTER TABLE trials RENAME COLUMN accuracy TO quality;
    ALTER TABLE trials RENAME COLUMN accuracy_drop TO quality_drop;
    ALTER TABLE trials ADD COLUMN accuracy DOUBLE;
    ALTER TABLE trials ADD COLUMN accuracy_drop DOUBLE;
    UPDATE trials SET accuracy = quality, accuracy_drop = quality_drop;
    """,
    # 5: the direction of the primary metric, so that SQL and the fronts rank an error rate
    # (CER: lower is better) the right way; ``quality_drop`` is positive when worse either way.
    """
    ALTER TABLE trials ADD COLUMN quality_higher_is_better BOOLEAN;
    UPDATE trials SET quality_higher_is_better = TRUE WHERE quality IS NOT NULL;
    """,
    # 6: per-image evidence (docs/store.md): each eval image set once, each trial's per-image
    # outcomes as lists in that order, and each candidate's paired comparison with a baseline.
    """
    CREATE TABLE image_sets (
        image_set   VARCHAR PRIMARY KEY,   -- hash of the ids, in order
        n_images    INTEGER NOT NULL,
        ids         VARCHAR[] NOT NULL     -- stable image ids (file paths, `digits/0042`)
    );
    CREATE TABLE evidence (
        job_id       VARCHAR NOT NULL,
        target       VARCHAR NOT NULL,
        trial_number INTEGER NOT NULL,
        image_set    VARCHAR NOT NULL,
        metric       VARCHAR NOT NULL,     -- the primary metric the evidence recomputes
        score        DOUBLE[] NOT NULL,    -- per image its own score, higher is better
        confidence   DOUBLE[],             -- per image the prediction's confidence
        correct      BOOLEAN[],            -- per image right/wrong (classification)
        predicted    VARCHAR[],            -- per image what was predicted, in words
        arrays       BLOB,                 -- the task's arrays (numpy .npz)
        PRIMARY KEY (job_id, target, trial_number)
    );
    CREATE TABLE comparisons (
        job_id                VARCHAR NOT NULL,
        target                VARCHAR NOT NULL,
        trial_number          INTEGER NOT NULL,
        baseline_job_id       VARCHAR NOT NULL,
        baseline_target       VARCHAR NOT NULL,
        baseline_trial_number INTEGER NOT NULL,
        metric                VARCHAR NOT NULL,
        higher_is_better      BOOLEAN NOT NULL,
        baseline              DOUBLE,      -- the baseline's metric on the whole image set
        value                 DOUBLE,      -- the candidate's
        delta                 DOUBLE,      -- value - baseline
        low                   DOUBLE,      -- paired bootstrap interval of delta
        high                  DOUBLE,
        confidence            DOUBLE,
        resamples             INTEGER,
        seed                  BIGINT,
        significant           BOOLEAN,     -- the interval excludes 0
        n_images              INTEGER,
        broken                INTEGER,     -- images whose own score fell by > flip_threshold
        fixed                 INTEGER,
        flip_threshold        DOUBLE,
        p_value               DOUBLE,      -- McNemar's exact test (right/wrong outcomes)
        seconds               DOUBLE,
        PRIMARY KEY (job_id, target, trial_number, baseline_job_id, baseline_target,
                     baseline_trial_number, metric)
    );
    """,
    # 7: how a job's calibration images were chosen and how many, for the model card.
    """
    ALTER TABLE jobs ADD COLUMN calibration VARCHAR;
    """,
]

#: The schema version a store has once migrated.
SCHEMA_VERSION = len(MIGRATIONS)

-- Run once by the postgres container on an empty data directory: the
-- business table the sample producer writes beside its events. The outbox
-- table, its helper function, the publication and the slot are made by
-- `outbox-cdc setup` (the outbox-cdc-setup service).
CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, total numeric NOT NULL);

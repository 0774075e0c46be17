-- OVER aggregates: ROWS and RANGE frames over event time, bounded and unbounded, with and
-- without PARTITION BY, late rows (bid_tight) dropped where Flink drops them.
-- include: prelude.sql
CREATE TABLE bid_tight (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'bid.csv', 'format' = 'csv', 'csv.null-literal' = '\N');

-- ROWS: the current row and the two before it, per auction
SELECT auction, price, ts,
  COUNT(*) OVER w AS n, SUM(price) OVER w AS total, MIN(price) OVER w AS lo,
  MAX(price) OVER w AS hi, AVG(price) OVER w AS mean
FROM bid
WINDOW w AS (PARTITION BY auction ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW);

-- RANGE: the last ten seconds, per bidder
SELECT bidder, price, ts,
  COUNT(price) OVER (PARTITION BY bidder ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW) AS n,
  MAX(price) OVER (PARTITION BY bidder ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW) AS hi
FROM bid;

-- unbounded RANGE (the default frame) and ROWS, per channel
SELECT channel, price, ts, COUNT(*) OVER (PARTITION BY channel ORDER BY ts) AS n_range
FROM bid;

SELECT channel, price, ts,
  SUM(price) OVER (PARTITION BY channel ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total_rows
FROM bid;

-- no partition: one running window over the whole table
SELECT price, ts, MAX(price) OVER (ORDER BY ts ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS hi6
FROM bid;

-- late rows: bounded and unbounded frames over a tight watermark
SELECT auction, price, ts,
  COUNT(*) OVER (PARTITION BY auction ORDER BY ts RANGE BETWEEN INTERVAL '3' SECOND PRECEDING AND CURRENT ROW) AS n3
FROM bid_tight;

SELECT auction, price, ts,
  SUM(price) OVER (PARTITION BY auction ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run
FROM bid_tight;

-- an OVER aggregate under a filter and an expression
SELECT auction, price * 2 AS p2, COUNT(DISTINCT bidder) OVER (PARTITION BY auction ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS bidders
FROM bid WHERE price > 100;

-- late rows in a ROWS frame: dropped per partition, behind the partition's last fired rowtime
SELECT auction, price, ts,
  MIN(price) OVER (PARTITION BY auction ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS lo2
FROM bid_tight;

-- rows that share their rowtime: peers in RANGE frames, arrival order in ROWS frames
CREATE TABLE t (id BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'filesystem', 'path' = 'ties.csv', 'format' = 'csv');

SELECT id, v, ts, SUM(v) OVER (PARTITION BY id ORDER BY ts) AS range_sum FROM t;

SELECT id, v, ts, SUM(v) OVER (PARTITION BY id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS rows_sum FROM t;

SELECT id, v, ts,
  COUNT(*) OVER (PARTITION BY id ORDER BY ts RANGE BETWEEN INTERVAL '0.5' SECOND PRECEDING AND CURRENT ROW) AS n,
  MAX(v) OVER (PARTITION BY id ORDER BY ts RANGE BETWEEN INTERVAL '0.5' SECOND PRECEDING AND CURRENT ROW) AS hi
FROM t;

SELECT id, v, ts, SUM(v) OVER (PARTITION BY id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS pair FROM t;

-- an OVER aggregate in a view, filtered afterwards
CREATE VIEW running_bids AS
SELECT auction, price, ts, COUNT(*) OVER (PARTITION BY auction ORDER BY ts) AS nth FROM bid;

SELECT auction, price, nth FROM running_bids WHERE nth <= 2;

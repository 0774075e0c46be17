-- include: prelude.sql
-- CUMULATE windows (5 s steps up to 20 s) per channel, and SESSION and HOP windows over a table
-- whose tight watermark makes out-of-order bids late (they are dropped where Flink drops them).
SELECT window_start, window_end, channel, COUNT(*) AS bids, MAX(price) AS hi, AVG(price) AS avg_price
FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECOND))
GROUP BY window_start, window_end, channel;

CREATE TABLE bid_tight (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'bid.csv', 'format' = 'csv', 'csv.null-literal' = '\N');

SELECT channel, window_start, window_end, COUNT(*) AS bids, SUM(price) AS total
FROM TABLE(SESSION(TABLE bid_tight PARTITION BY channel, DESCRIPTOR(ts), INTERVAL '2' SECOND))
GROUP BY channel, window_start, window_end;

SELECT window_start, window_end, COUNT(*) AS bids, MIN(price) AS lo
FROM TABLE(HOP(TABLE bid_tight, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '6' SECOND))
GROUP BY window_start, window_end;

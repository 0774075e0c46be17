-- ROUND and TRUNCATE: half up on decimal digits, Flink's result types (DECIMAL(1 + p - s + d, d)).
-- include: prelude.sql
SELECT auction, ROUND(price, -2) AS r_big, ROUND(CAST(price AS DOUBLE) / 7, 2) AS r_dbl, ROUND(CAST(price AS DECIMAL(10, 2)) / 7, 1) AS r_dec,
  ROUND(CAST(price AS DOUBLE) / 7) AS r0, TRUNCATE(CAST(price AS DOUBLE) / 7, 2) AS t_dbl, TRUNCATE(price, -2) AS t_big,
  ROUND(CAST(-2.5 AS DOUBLE)) AS neg, ROUND(CAST(2.5 AS DECIMAL(3, 1))) AS half, ROUND(CAST(price AS INT), -1) AS r_int
FROM bid WHERE MOD(auction, 9) = 0;

SELECT ROUND(1.005, 2) AS a, ROUND(CAST(1.005 AS DOUBLE), 2) AS b, ROUND(-1.5) AS c, TRUNCATE(-1.59, 1) AS d,
  ROUND(CAST(-155 AS DECIMAL(5, 0)), -1) AS e, ROUND(CAST(123.456 AS DECIMAL(6, 3)), -1) AS f, TRUNCATE(CAST(-7.5 AS DOUBLE)) AS g,
  ROUND(CAST(NULL AS DOUBLE), 1) AS h, ROUND(CAST(12 AS TINYINT), -1) AS i
FROM bid WHERE auction = 1000 AND price = 111;

SELECT ROUND(7, 2) AS a, TRUNCATE(-7, 3) AS b, ROUND(CAST(1.5 AS DECIMAL(2, 1)), 3) AS c, TRUNCATE(CAST(1.55 AS DECIMAL(3, 2)), 5) AS d,
  ROUND(POWER(CAST(10 AS DOUBLE), -40), 2) AS e, ROUND(CAST(price AS INT), 2) AS f, ROUND(CAST(2.25 AS DOUBLE), 4) AS g
FROM bid WHERE auction = 1000 AND price = 111;

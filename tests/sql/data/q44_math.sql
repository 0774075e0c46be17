-- Math functions: DOUBLE results of Java's Math, ABS and SIGN of the argument's type.
-- include: prelude.sql
SELECT auction, price,
  SQRT(price) AS r, LN(price + 1) AS l, LOG10(price + 1) AS l10, LOG2(price + 1) AS l2,
  LOG(2, price + 1) AS lb, EXP(MOD(price, 10)) AS e, POWER(price, 2) AS p2, POWER(2, MOD(price, 20)) AS p
FROM bid WHERE MOD(auction, 5) = 0;

SELECT auction, ABS(price - 5000) AS a, SIGN(price - 5000) AS s, ABS(CAST(price AS DOUBLE) / -7) AS ad,
  SIGN(CAST(price - 5000 AS DECIMAL(10, 2))) AS sd, ABS(CAST(price - 5000 AS INT)) AS ai
FROM bid WHERE MOD(auction, 3) = 0;

SELECT auction, SIN(price) AS s, COS(price) AS c, TAN(price) AS t, ATAN(price) AS atn,
  DEGREES(RADIANS(price)) AS dr, PI() * 2 AS tau, ASIN(MOD(price, 3) - 1) AS asn, ACOS(MOD(price, 3) - 1) AS acs,
  ATAN2(price, auction) AS a2, COT(price + 1) AS ct
FROM bid WHERE MOD(auction, 7) = 0;

SELECT SQRT(-1.0) AS nan, LN(0) AS minf, SQRT(CAST(NULL AS DOUBLE)) AS n, ABS(CAST(NULL AS INT)) AS an, SIGN(CAST(NULL AS BIGINT)) AS sn
FROM bid WHERE auction = 1000 AND price = 111;

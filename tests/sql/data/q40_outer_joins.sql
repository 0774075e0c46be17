-- include: prelude.sql
-- Regular outer joins: a residual condition in ON, NULL keys, and an updating input.
SELECT a.id, a.category, p.name FROM auction a LEFT JOIN person p ON a.seller = p.id AND p.state = 'CA';

SELECT p.id, p.city, a.id AS auction_id FROM auction a RIGHT JOIN person p ON a.seller = p.id;

SELECT a.id, p.id AS person_id, p.name FROM auction a FULL JOIN person p ON a.seller = p.id AND a.category = 10;

SELECT c.auction, c.n, a.seller FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) c
LEFT JOIN auction a ON c.auction = a.id;

SELECT b.bidder, p.name, b.price FROM bid b JOIN person p ON b.bidder = p.id WHERE b.price BETWEEN 100 AND 300 AND p.city <> 'Boise';

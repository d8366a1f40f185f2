-- Access rules (§6.1): the `access.add` events that no `access.rm` refers to. Every statement
-- that asks for the active rules reads this view, so the rule is written once; PostgreSQL inlines
-- it, so a query on it plans as the anti-join it replaces.
CREATE VIEW boxes.active_access_rules AS
SELECT a.id, a.box_id, a.seq, a.type, a.sender_id, a.content, a.referrer_id, a.created_at
FROM boxes.events a
WHERE a.type = 'access.add'
  AND NOT EXISTS (SELECT 1 FROM boxes.events r
                  WHERE r.box_id = a.box_id AND r.type = 'access.rm' AND r.referrer_id = a.id);

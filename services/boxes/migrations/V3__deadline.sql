-- Fails a transaction that reaches this point after the request's deadline (the client has been
-- answered 503 by then), so it cannot commit behind that answer: 57014 like a statement timeout.
CREATE FUNCTION boxes.check_deadline(deadline timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF deadline IS NOT NULL AND clock_timestamp() > deadline THEN
        RAISE EXCEPTION 'the request ran out of time' USING ERRCODE = 'query_canceled';
    END IF;
END
$$;

CREATE TABLE ticket_generation (
    id BIGINT PRIMARY KEY,
    gen BIGINT NOT NULL
);
INSERT INTO ticket_generation (id, gen) VALUES (1, 0);

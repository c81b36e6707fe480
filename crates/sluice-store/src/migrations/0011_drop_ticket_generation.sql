DROP TABLE ticket_generation;

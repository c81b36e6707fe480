-- verify-full against a private CA: the PEM bundle of the CA certificates an instance is verified against
-- (public certificates, not a secret).
ALTER TABLE instances ADD COLUMN tls_ca TEXT;

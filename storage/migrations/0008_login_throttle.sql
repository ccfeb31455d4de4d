-- Login throttling per address (any usernames) as well as per username and address: the count of
-- one address's recent failures is taken under an advisory lock at every login
-- (console/auth.py), so it needs its own index.
CREATE INDEX login_attempts_ip_recent ON login_attempts (ip, at DESC) WHERE NOT success;

-- When the login that started a refresh-token family happened: copied to every token of the
-- family, so an access token issued on refresh carries the original `auth_time` and fresh
-- authentication cannot be faked by refreshing. NULL for families started before this
-- migration (treated as not fresh).
ALTER TABLE refresh_tokens ADD COLUMN authenticated_at TIMESTAMPTZ;

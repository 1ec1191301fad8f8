-- Resume reads a user's private messages through the conversation list
-- (conversations_by_recency, then messages_by_pair for each conversation: see
-- trionet/store/postgres/messages.py, REPLAY_MESSAGES_SQL). The indexes of messages by
-- recipient and by sender served only the replay plan, and each stored private message
-- wrote an entry to each of them.
DROP INDEX IF EXISTS messages_to_user;
DROP INDEX IF EXISTS messages_from_user;

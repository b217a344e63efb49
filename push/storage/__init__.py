"""Redis: the clients for every kind of REDIS_URL, the Lua scripts, the commands of the
delivery path, the wake subscribers, presence, and a private server for development.

"storage" rather than "redis" so the folder never shadows or reads like redis-py. Here
"connection" means a Redis connection and "channel" a pub/sub channel, nothing else."""

"""The web console: server-rendered pages on top of the services' HTTP APIs, for the people who
use Retention rather than build on it. It holds no customer data; every number comes from an API
call made with the signed-in user's key."""

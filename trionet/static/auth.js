// auth.js: the signed-out view. Log in, or create an account and then log in (a failed login
// says so and points to Create account). The server keeps the session in an HttpOnly cookie:
// the page never sees or stores the token.

import { post } from "./api.js";
import { byId } from "./dom.js";

/** Show the login form; `onSignedIn(me)` runs once a login succeeds. */
export function showAuth(onSignedIn, note = "") {
  byId("chat-view").hidden = true;
  byId("auth-view").hidden = false;
  const form = byId("auth-form");
  const error = byId("auth-error");
  const username = byId("auth-username");
  const password = byId("auth-password");
  error.textContent = note;
  username.focus();

  async function submit(register) {
    const body = { username: username.value.trim(), password: password.value };
    if (!body.username || !body.password) {
      error.textContent = "Enter a username and a password.";
      return;
    }
    if (register && body.password.length < 8) {
      error.textContent = "Choose a password of at least 8 characters.";
      return;
    }
    error.textContent = "";
    try {
      if (register) await post("/api/auth/register", body);
      const me = await post("/api/auth/login", body);
      password.value = "";
      form.onsubmit = null;
      byId("register-button").onclick = null;
      onSignedIn({ id: me.id, username: me.username, is_admin: me.is_admin });
    } catch (err) {
      error.textContent = message(err, register);
    }
  }

  form.onsubmit = (event) => {
    event.preventDefault();
    submit(false);
  };
  byId("register-button").onclick = () => submit(true);
}

/** What a failed login or registration says: a failed login points to registration. */
function message(err, register) {
  if (err.status === 409) return "That username is taken.";
  if (err.status === 401 && !register) {
    return "Wrong username or password. New here? Choose Create account.";
  }
  return err.message;
}

//! `/readyz`: 200 while the server can do its work, 503 naming the reason while it cannot, and
//! back to 200 once the cause is gone. `/healthz` stays 200 throughout.

mod common;

use common::{eventually, get, Demo, Server};

const EP: &str = "episodes/defining-de-escalation/episode.toml";

fn ready(server: &Server) -> (u16, String) {
    let r = get(server.addr, "/readyz", &[]);
    (r.status, String::from_utf8(r.body).unwrap())
}

#[test]
fn readyz_names_a_failed_reload_and_a_locked_store_and_recovers() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    assert!(
        eventually(10, || ready(&server) == (200, "ready\n".into())),
        "{:?}",
        ready(&server)
    );

    // A broken edit: the last good catalog keeps serving, and readiness says why it is stale.
    let good = demo.read(EP);
    demo.write(
        EP,
        &good.replace("title = \"Defining De-Escalation\"", "title = 7"),
    );
    assert!(
        eventually(20, || {
            let (status, body) = ready(&server);
            status == 503
                && body.contains("catalog: the last reload found")
                && body.contains("title")
        }),
        "{:?}",
        ready(&server)
    );
    assert_eq!(get(server.addr, "/healthz", &[]).status, 200, "still alive");
    // An edit to another episode does not hide the broken one.
    let other = "episodes/behavioral-response-to-stress-and-fear/episode.toml";
    let text = demo.read(other);
    demo.write(other, &format!("{text}\n# touched\n"));
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        ready(&server).0,
        503,
        "the broken folder is checked again with every reload"
    );
    demo.write(EP, &good);
    assert!(
        eventually(20, || ready(&server).0 == 200),
        "{:?}",
        ready(&server)
    );

    // The database locked by another process past the busy timeout: no writes.
    let db = rusqlite::Connection::open(demo.path(".rollcall/rollcall.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE; UPDATE probes SET at = 0;")
        .unwrap();
    let (status, body) = ready(&server);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("store: cannot write to the database"),
        "{body}"
    );
    db.execute_batch("COMMIT;").unwrap();
    drop(db);
    assert!(
        eventually(20, || ready(&server).0 == 200),
        "{:?}",
        ready(&server)
    );
}

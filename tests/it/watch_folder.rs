//! The watch folder (`FRAMEIO_UPLOAD_DIR`) of a running rushes against the fake Frame.io: a file
//! is sent once it has settled, skip rules, once only across restarts (and instances sharing a
//! PostgreSQL database), version marks into version stacks, the dashboard's asset groups.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::fake_frameio::{ACCOUNT, FakeFrameio, STATIC_TOKEN};
use crate::support::service::{TestApp, config_for, temp_dir};
use crate::support::{db, wait_for};
use crate::uploads::{pattern, write_file};
use rushes::config::{Config, FrameioConfig};

const WAIT: Duration = Duration::from_secs(60);
const FOLDER: &str = "folder-watch";

fn app_config(root: &Path, watch: &Path, fake: &FakeFrameio, settle: &str) -> Config {
    let feed = root.join("feed.json");
    std::fs::write(&feed, "[]").expect("feed");
    let mut config = config_for(root, &feed.display().to_string());
    config.feed.monitor_interval = Duration::from_secs(3600);
    let vars = [
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_TOKEN", STATIC_TOKEN.to_string()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.to_string()),
        ("FRAMEIO_POLL_INTERVAL", "3600".to_string()),
        ("FRAMEIO_UPLOAD_DIR", watch.display().to_string()),
        ("FRAMEIO_UPLOAD_FOLDER_ID", FOLDER.to_string()),
        ("FRAMEIO_UPLOAD_SETTLE", settle.to_string()),
    ];
    config.frameio = FrameioConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("frameio config");
    config
}

fn created(fake: &FakeFrameio) -> Vec<String> {
    fake.uploads(|u| u.created.clone())
}

/// Waits until `n` files were made, every one complete on Frame.io and in `app`'s store;
/// returns their ids.
async fn wait_complete(fake: &FakeFrameio, app: &TestApp, n: usize) -> Vec<String> {
    wait_for(&format!("{n} files sent"), WAIT, || async {
        let made = created(fake);
        assert!(made.len() <= n, "more files made than sent: {made:?}");
        let sends = app.state.store.sends(100).await.ok()?;
        let stored = sends.iter().filter(|s| s.state == "complete").count() >= n;
        (made.len() == n && stored && made.iter().all(|f| fake.uploaded_bytes(f).is_some()))
            .then_some(made)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_file_is_sent_once_and_partial_files_are_skipped() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let watch = root.path().join("exports");
    std::fs::create_dir_all(&watch).expect("watch dir");
    for name in [".Promo.mov", "Promo.mov.part", "render.tmp", "~lock.prproj"] {
        write_file(&watch, name, 100, 1);
    }
    let app = TestApp::spawn(app_config(root.path(), &watch, &fake, "1s")).await;
    // The file grows for a while: it is sent only a second after its last change.
    let path = watch.join("Promo.mov");
    let mut bytes = Vec::new();
    let mut last_write = Instant::now();
    for i in 0..4u8 {
        bytes.extend(pattern(200_000, i));
        std::fs::write(&path, &bytes).expect("write");
        last_write = Instant::now();
        // The next write comes before the settle time ran out.
        wait_for("the watcher to see this size", WAIT, || async {
            (last_write.elapsed() >= Duration::from_millis(300)).then_some(())
        })
        .await;
    }
    let made = wait_complete(&fake, &app, 1).await;
    let first_put = fake.uploads(|u| u.puts.len());
    assert!(first_put > 0);
    assert!(
        last_write.elapsed() >= Duration::from_secs(1),
        "sent before the file had settled"
    );
    assert_eq!(fake.uploaded_bytes(&made[0]), Some(bytes.clone()));
    assert_eq!(fake.folder_of(&made[0]).as_deref(), Some(FOLDER));
    // The API shows it, sent, past `uploading`.
    let (_, body) = app.get("/api/uploads").await;
    let upload = body["uploads"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["file_id"] == made[0].as_str()).cloned())
        .expect("tracked");
    assert_eq!(upload["transfer"]["state"], "complete");
    assert_eq!(upload["transfer"]["bytes_sent"], bytes.len());
    app.stop().await;

    // A restart does not send it again; a new file is sent.
    let app = TestApp::spawn(app_config(root.path(), &watch, &fake, "1s")).await;
    write_file(&watch, "Other.mov", 5000, 7);
    let made = wait_complete(&fake, &app, 2).await;
    assert_eq!(made.len(), 2, "{made:?}");
    app.stop().await;
    assert_eq!(fake.uploads(|u| u.refusals.clone()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_marks_make_a_version_stack_and_the_dashboard_groups_them() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let watch = root.path().join("exports");
    std::fs::create_dir_all(&watch).expect("watch dir");
    let app = TestApp::spawn(app_config(root.path(), &watch, &fake, "0")).await;
    write_file(&watch, "Spot.mov", 3000, 1);
    let v1 = wait_complete(&fake, &app, 1).await;
    write_file(&watch, "Spot_v2.mov", 3001, 2);
    let v2 = wait_complete(&fake, &app, 2).await;
    write_file(&watch, "SPOT-V03.mov", 3002, 3);
    let v3 = wait_complete(&fake, &app, 3).await;
    let stacks = wait_for("the version stack", WAIT, || async {
        let stacks = fake.uploads(|u| u.stacks.clone());
        let moves = fake.uploads(|u| u.moves.clone());
        (!stacks.is_empty() && !moves.is_empty()).then_some((stacks, moves))
    })
    .await;
    assert_eq!(
        stacks.0,
        vec![(
            "vs-1".to_string(),
            FOLDER.to_string(),
            vec![v1[0].clone(), v2[1].clone()]
        )]
    );
    assert_eq!(stacks.1, vec![(v3[2].clone(), "vs-1".to_string())]);
    assert_eq!(fake.parent_of(&v3[2]).as_deref(), Some("vs-1"));
    assert_eq!(fake.name_of(&v2[1]).as_deref(), Some("Spot_v2.mov"));
    // One asset on the dashboard, newest version first, its state the asset's.
    fake.set_file_status(&v3[2], "transcoded");
    let (status, html) = app.get_text("/ui/frameio").await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<tr class=\"asset\"").count(), 1, "{html}");
    let v3_at = html.find("v3 · SPOT-V03.mov").expect("v3 row");
    let v1_at = html.find("v1 · Spot.mov").expect("v1 row");
    assert!(v3_at < v1_at, "newest version first");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_send_each_file_once() {
    if !db::on_postgres() {
        // Two instances share a database only on PostgreSQL (SQLite: one per data folder).
        return;
    }
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let watch = root.path().join("exports");
    std::fs::create_dir_all(&watch).expect("watch dir");
    let a_root = root.path().join("a");
    let b_root = root.path().join("b");
    std::fs::create_dir_all(&a_root).expect("a");
    std::fs::create_dir_all(&b_root).expect("b");
    let shared = db::url_for(&a_root.join("data")).expect("postgres url");
    let mut a = app_config(&a_root, &watch, &fake, "0");
    let mut b = app_config(&b_root, &watch, &fake, "0");
    a.database.url = Some(shared.clone().into());
    b.database.url = Some(shared.into());
    let app_a = TestApp::spawn(a).await;
    let app_b = TestApp::spawn(b).await;
    for i in 0..6u8 {
        write_file(&watch, &format!("Clip {i}.mov"), 50_000 + usize::from(i), i);
    }
    wait_complete(&fake, &app_a, 6).await;
    app_a.stop().await;
    app_b.stop().await;
    let made = created(&fake);
    assert_eq!(made.len(), 6, "each file once: {made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_that_lose_their_answer_leave_one_file_through_the_folders_retry() {
    use crate::support::fake_frameio_children::CreateFault;
    let fake = FakeFrameio::start().await;
    // Every attempt of the first try loses its answer (the uploader gives up with a create in
    // flight); the watch folder's next try finds the mark, cleans up and sends.
    fake.fail_next_creates(&[CreateFault::Reset; 5]);
    let root = temp_dir();
    let watch = root.path().join("exports");
    std::fs::create_dir_all(&watch).expect("watch dir");
    let app = TestApp::spawn(app_config(root.path(), &watch, &fake, "0")).await;
    let (_, bytes) = write_file(&watch, "Promo.mov", 40_000, 4);
    let kept = wait_for("the file sent", WAIT, || async {
        let sends = app.state.store.sends(10).await.ok()?;
        let send = sends.into_iter().find(|s| s.state == "complete")?;
        send.file_id
    })
    .await;
    app.stop().await;
    let made = created(&fake);
    assert_eq!(made.len(), 6, "{made:?}");
    assert_eq!(made.last(), Some(&kept));
    assert_eq!(fake.live_files_named("Promo.mov"), vec![kept.clone()]);
    assert_eq!(fake.uploaded_bytes(&kept), Some(bytes));
    let mut deleted = fake.uploads(|u| u.deleted.clone());
    deleted.sort();
    let mut orphans = made[..5].to_vec();
    orphans.sort();
    assert_eq!(
        deleted, orphans,
        "every file made without an answer deleted"
    );
}

/// The ids of the complete sends, by name.
async fn complete_files(app: &TestApp) -> std::collections::HashMap<String, String> {
    let sends = app.state.store.sends(100).await.unwrap_or_default();
    sends
        .into_iter()
        .filter(|s| s.state == "complete")
        .filter_map(|s| s.file_id.map(|f| (s.name, f)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_completing_out_of_order_stack_in_version_order() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let watch = root.path().join("exports");
    std::fs::create_dir_all(&watch).expect("watch dir");
    // v1 has two parts (1.5 MB): its second part waits in the fake; v2 and v3 have one part.
    fake.hold_part(1);
    let app = TestApp::spawn(app_config(root.path(), &watch, &fake, "0")).await;
    write_file(&watch, "Spot.mov", 1_500_000, 1);
    let v1 = wait_for("v1 being sent", WAIT, || async {
        let v1 = created(&fake).first().cloned()?;
        (fake.puts_per_part(&v1).first() == Some(&1)).then_some(v1)
    })
    .await;
    write_file(&watch, "Spot_v2.mov", 3001, 2);
    let v2 = wait_for("v2 complete", WAIT, || async {
        complete_files(&app).await.remove("Spot_v2.mov")
    })
    .await;
    write_file(&watch, "Spot_v3.mov", 3002, 3);
    let v3 = wait_for("v3 complete", WAIT, || async {
        complete_files(&app).await.remove("Spot_v3.mov")
    })
    .await;
    assert!(
        fake.uploads(|u| u.stacks.is_empty() && u.moves.is_empty()),
        "newer versions wait for v1"
    );
    fake.release_parts();
    let (stacks, moves) = wait_for("the version stack", WAIT, || async {
        let (stacks, moves) = fake.uploads(|u| (u.stacks.clone(), u.moves.clone()));
        (!moves.is_empty()).then_some((stacks, moves))
    })
    .await;
    assert_eq!(
        stacks,
        vec![(
            "vs-1".to_string(),
            FOLDER.to_string(),
            vec![v1.clone(), v2.clone()]
        )],
        "one stack, oldest first"
    );
    assert_eq!(moves, vec![(v3.clone(), "vs-1".to_string())]);
    for f in [&v1, &v2, &v3] {
        assert_eq!(fake.parent_of(f).as_deref(), Some("vs-1"));
    }
    // The dashboard: one asset, newest version first.
    let (_, html) = app.get_text("/ui/frameio").await;
    assert_eq!(html.matches("<tr class=\"asset\"").count(), 1, "{html}");
    let at = |label: &str| {
        html.find(label)
            .unwrap_or_else(|| panic!("{label} in {html}"))
    };
    assert!(at("v3 · Spot_v3.mov") < at("v2 · Spot_v2.mov"));
    assert!(at("v2 · Spot_v2.mov") < at("v1 · Spot.mov"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_completing_at_once_make_one_stack_in_order() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let watch = root.path().join("exports");
    std::fs::create_dir_all(&watch).expect("watch dir");
    let app = TestApp::spawn(app_config(root.path(), &watch, &fake, "0")).await;
    // Two files at a time: their only part waits in the fake, then both complete at once.
    let mut names = Vec::new();
    for (round, pair) in [
        ["Trailer.mov", "Trailer v2.mov"],
        ["Trailer v3.mov", "Trailer_v4.mov"],
    ]
    .iter()
    .enumerate()
    {
        fake.hold_part(0);
        for (i, name) in pair.iter().enumerate() {
            write_file(&watch, name, 5000 + 2 * round + i, 1);
            names.push(name.to_string());
        }
        wait_for("both files made", WAIT, || async {
            (created(&fake).len() == 2 * (round + 1)).then_some(())
        })
        .await;
        fake.release_parts();
        wait_for("both stacked", WAIT, || async {
            let sends = app.state.store.sends(10).await.ok()?;
            (sends.len() == 2 * (round + 1) && sends.iter().all(|s| s.stack_id.is_some()))
                .then_some(())
        })
        .await;
    }
    let files = complete_files(&app).await;
    let ids: Vec<String> = names.iter().map(|n| files[n].clone()).collect();
    app.stop().await;
    assert_eq!(
        fake.uploads(|u| u.stacks.clone()),
        vec![("vs-1".to_string(), FOLDER.to_string(), ids[..2].to_vec())],
        "one stack, in version order"
    );
    assert_eq!(
        fake.uploads(|u| u.moves.clone()),
        vec![
            (ids[2].clone(), "vs-1".to_string()),
            (ids[3].clone(), "vs-1".to_string())
        ],
        "later versions moved in, in version order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_stack_whose_answer_is_lost_is_made_once() {
    let fake = FakeFrameio::start().await;
    // The stack is made, then answered 500: the client does not make it again on its own, and
    // rushes finds it as the new version's parent.
    fake.uploads(|u| u.stack_faults = 1);
    let root = temp_dir();
    let watch = root.path().join("exports");
    std::fs::create_dir_all(&watch).expect("watch dir");
    let app = TestApp::spawn(app_config(root.path(), &watch, &fake, "0")).await;
    write_file(&watch, "Teaser.mov", 3000, 1);
    wait_complete(&fake, &app, 1).await;
    write_file(&watch, "Teaser_v2.mov", 3001, 2);
    wait_complete(&fake, &app, 2).await;
    write_file(&watch, "Teaser_v3.mov", 3002, 3);
    let made = wait_complete(&fake, &app, 3).await;
    let stacked = wait_for("every version stacked", WAIT, || async {
        let sends = app.state.store.sends(10).await.ok()?;
        let ids: Vec<Option<String>> = sends.iter().map(|s| s.stack_id.clone()).collect();
        ids.iter().all(Option::is_some).then_some(ids)
    })
    .await;
    app.stop().await;
    assert!(
        stacked.iter().all(|s| s.as_deref() == Some("vs-1")),
        "{stacked:?}"
    );
    assert_eq!(
        fake.uploads(|u| u.stacks.clone()),
        vec![("vs-1".to_string(), FOLDER.to_string(), made[..2].to_vec())],
        "one stack"
    );
    assert_eq!(fake.count("POST", "/version_stacks"), 1);
    assert_eq!(
        fake.uploads(|u| u.moves.clone()),
        vec![(made[2].clone(), "vs-1".to_string())]
    );
}

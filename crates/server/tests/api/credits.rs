//! Credits: set on create and PATCH, spent exactly by VALID verifications (also under
//! concurrency), `USAGE_EXCEEDED` at zero, refilled daily or monthly.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{app, As, TestApp};

async fn verify(app: &TestApp, verifier: &str, key: &str, cost: Option<i64>) -> Value {
    let mut body = json!({"key": key});
    if let Some(c) = cost {
        body["cost"] = json!(c);
    }
    app.post("/api/v1/keys/verify", As::ApiKey(verifier), body)
        .await
        .expect(StatusCode::OK)
        .body
}

#[tokio::test]
async fn credits_are_spent_refilled_and_edited() {
    let app = app().await;
    let t = app.tenant("credits").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let r = app
        .post(
            "/api/v1/api-keys",
            As::Bearer(&member),
            json!({"remaining": 3, "refill": {"interval": "daily", "amount": 10}}),
        )
        .await
        .expect(StatusCode::CREATED);
    let (id, key) = (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["key"].as_str().unwrap().to_owned(),
    );
    let shown = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown.body["remaining"], 3);
    assert_eq!(
        shown.body["refill"],
        json!({"interval": "daily", "amount": 10, "day": 1})
    );

    let v = verify(&app, &verifier, &key, Some(2)).await;
    assert_eq!(
        (v["code"].clone(), v["remaining"].clone()),
        (json!("VALID"), json!(1))
    );
    let v = verify(&app, &verifier, &key, Some(2)).await;
    assert_eq!(
        (
            v["code"].clone(),
            v["valid"].clone(),
            v["remaining"].clone()
        ),
        (json!("USAGE_EXCEEDED"), json!(false), json!(1))
    );
    let v = verify(&app, &verifier, &key, Some(0)).await;
    assert_eq!(
        (v["code"].clone(), v["remaining"].clone()),
        (json!("VALID"), json!(1)),
        "cost 0 checks without spending"
    );
    let v = verify(&app, &verifier, &key, None).await;
    assert_eq!(v["remaining"], 0);
    assert_eq!(
        verify(&app, &verifier, &key, None).await["code"],
        "USAGE_EXCEEDED"
    );

    // The next UTC day refills to the amount.
    app.advance(time::Duration::days(1));
    let shown = app
        .get(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member))
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown.body["remaining"], 10);
    assert_eq!(verify(&app, &verifier, &key, None).await["remaining"], 9);

    // PATCH sets, and null removes (unlimited); it takes effect on the next verify.
    let r = app
        .patch(
            &format!("/api/v1/api-keys/{id}"),
            As::Bearer(&member),
            json!({"remaining": 1, "refill": null}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["remaining"], 1);
    assert!(r.body.get("refill").is_none());
    assert_eq!(verify(&app, &verifier, &key, None).await["remaining"], 0);
    app.patch(
        &format!("/api/v1/api-keys/{id}"),
        As::Bearer(&member),
        json!({"remaining": null}),
    )
    .await
    .expect(StatusCode::OK);
    let v = verify(&app, &verifier, &key, Some(5)).await;
    assert_eq!(v["code"], "VALID");
    assert!(v.get("remaining").is_none());

    for bad in [
        json!({"remaining": -1}),
        json!({"refill": {"interval": "weekly", "amount": 5}}),
        json!({"refill": {"interval": "monthly", "amount": 0}}),
        json!({"refill": {"interval": "monthly", "amount": 5, "day": 32}}),
    ] {
        app.post("/api/v1/api-keys", As::Bearer(&member), bad.clone())
            .await
            .expect(StatusCode::BAD_REQUEST);
        app.patch(&format!("/api/v1/api-keys/{id}"), As::Bearer(&member), bad)
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
    for cost in [-1, 1_000_001] {
        let r = app
            .post(
                "/api/v1/keys/verify",
                As::ApiKey(&verifier),
                json!({"key": key, "cost": cost}),
            )
            .await;
        r.expect(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_never_spend_more_than_there_is() {
    let app = Arc::new(app().await);
    let t = app.tenant("credits").await;
    let member = app.member_of(t).await;
    let (_, verifier) = app.key_with(&member, &["keyward:verify"]).await;
    let r = app
        .post(
            "/api/v1/api-keys",
            As::Bearer(&member),
            json!({"remaining": 1000}),
        )
        .await
        .expect(StatusCode::CREATED);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (app, verifier, key) = (Arc::clone(&app), verifier.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut valid = 0u32;
            for _ in 0..40 {
                if verify(&app, &verifier, &key, None).await["code"] == "VALID" {
                    valid += 1;
                }
            }
            valid
        }));
    }
    let mut valid = 0;
    for t in tasks {
        valid += t.await.unwrap();
    }
    assert_eq!(
        valid, 1000,
        "1,280 verifications of a key with 1,000 credits"
    );
    assert_eq!(
        verify(&app, &verifier, &key, None).await["code"],
        "USAGE_EXCEEDED"
    );
}

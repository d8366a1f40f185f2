use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = spawn_app().await;
    let api = boxes_client::Boxes::new(app.client.clone(), &app.address);
    api.healthz().await.unwrap();
    let ready = api.readyz().await.unwrap();
    for check in ["postgres", "redis", "revocations"] {
        assert_eq!(ready.checks.get(check), Some(&serde_json::Value::Bool(true)), "{check} in {ready:?}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    let res = app.client.patch(app.url("/boxes")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
}

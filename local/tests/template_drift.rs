//! The resources the local stack creates match `template.yaml`: what is read from the
//! template is compared with what the emulator reports it created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_sqs::types::QueueAttributeName;
use local::moto::Moto;
use local::resources::{self, Overrides};
use local::template::StackSpec;

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[tokio::test]
async fn local_resources_match_the_template() {
    let spec = StackSpec::from_file(&workspace().join("template.yaml")).unwrap();
    let log = std::env::temp_dir().join(format!("moto-drift-{}.log", std::process::id()));
    let moto = Moto::start(&local::moto::locate(workspace()).unwrap(), &log).unwrap();
    let sdk = resources::emulator_sdk_config(moto.endpoint(), "eu-west-1").await;
    let overrides = Overrides {
        visibility_timeout_seconds: Some(2),
    };
    let created = resources::create(&sdk, &spec, "drift", &overrides)
        .await
        .unwrap();

    // The table: keys, attributes, indexes, stream, TTL.
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = dynamodb
        .describe_table()
        .table_name(&created.table_name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_owned()))
            .collect()
    };
    assert_eq!(keys(table.key_schema()), spec.table.key_schema);
    let attributes: BTreeSet<(String, String)> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name.clone(),
                a.attribute_type.as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(attributes, spec.table.attributes.iter().cloned().collect());
    let indexes = table.global_secondary_indexes();
    assert_eq!(indexes.len(), spec.table.indexes.len());
    for expected in &spec.table.indexes {
        let index = indexes
            .iter()
            .find(|i| i.index_name() == Some(expected.name.as_str()))
            .expect("index created");
        assert_eq!(keys(index.key_schema()), expected.key_schema);
        let projection = index
            .projection()
            .and_then(|p| p.projection_type())
            .map(|p| p.as_str().to_owned());
        assert_eq!(projection.as_deref(), Some(expected.projection.as_str()));
    }
    let view = table
        .stream_specification()
        .and_then(|s| s.stream_view_type())
        .map(|v| v.as_str().to_owned());
    assert_eq!(view, spec.table.stream_view_type);
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&created.table_name)
        .send()
        .await
        .unwrap();
    let ttl_attribute = ttl
        .time_to_live_description()
        .and_then(|d| d.attribute_name())
        .map(str::to_owned);
    assert_eq!(ttl_attribute, spec.table.ttl_attribute);

    // Every queue: its attributes (less the one deliberate override) and its redrive.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    assert_eq!(created.queues.len(), spec.queues.len());
    for queue in &spec.queues {
        let url = &created.queue(&queue.logical_id).unwrap().url;
        let actual = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        for (name, value) in &queue.attributes {
            let got = actual
                .get(&QueueAttributeName::from(name.as_str()))
                .cloned();
            let want = if name == "VisibilityTimeout" {
                "2".to_owned()
            } else {
                value.clone()
            };
            assert_eq!(
                got.as_deref(),
                Some(want.as_str()),
                "{}.{name}",
                queue.logical_id
            );
        }
        let redrive = actual
            .get(&QueueAttributeName::RedrivePolicy)
            .map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap());
        match &queue.redrive {
            Some((dlq, count)) => {
                let redrive = redrive.expect("redrive policy set");
                assert_eq!(
                    redrive["deadLetterTargetArn"],
                    created.queue(dlq).unwrap().arn.as_str()
                );
                assert_eq!(
                    redrive["maxReceiveCount"].to_string().trim_matches('"'),
                    count.to_string()
                );
            }
            None => assert!(
                redrive.is_none(),
                "{} has an unexpected redrive policy",
                queue.logical_id
            ),
        }
    }
}

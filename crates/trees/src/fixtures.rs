//! Small hand-written models for unit tests (the integration tests use
//! models trained by the real libraries).

/// A `binary:logistic` XGBoost model with two features and two trees:
/// tree 0 splits `x0 < 0.5` (missing goes left) into leaves -1 and 1;
/// tree 1 sends categories {1, 3} of `x1` right (leaf -0.25), others left (0.25).
pub(crate) const XGB_JSON: &str = r#"{"learner": {
  "attributes": {}, "feature_names": [], "feature_types": ["q", "c"],
  "gradient_booster": {"name": "gbtree", "model": {
    "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "2"},
    "iteration_indptr": [0, 1, 2],
    "tree_info": [0, 0],
    "trees": [
      {"id": 0,
       "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": "3", "size_leaf_vector": "1"},
       "left_children": [1, -1, -1], "right_children": [2, -1, -1], "parents": [2147483647, 0, 0],
       "split_indices": [0, 0, 0], "split_conditions": [5E-1, -1E0, 1E0], "default_left": [1, 0, 0],
       "split_type": [0, 0, 0], "categories": [], "categories_nodes": [], "categories_segments": [],
       "categories_sizes": [], "base_weights": [0E0, -1E0, 1E0], "loss_changes": [1E0, 0E0, 0E0],
       "sum_hessian": [2E0, 1E0, 1E0]},
      {"id": 1,
       "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": "3", "size_leaf_vector": "1"},
       "left_children": [1, -1, -1], "right_children": [2, -1, -1], "parents": [2147483647, 0, 0],
       "split_indices": [1, 0, 0], "split_conditions": [1E-45, 2.5E-1, -2.5E-1], "default_left": [0, 0, 0],
       "split_type": [1, 0, 0], "categories": [1, 3], "categories_nodes": [0], "categories_segments": [0],
       "categories_sizes": [2], "base_weights": [0E0, 2.5E-1, -2.5E-1], "loss_changes": [1E0, 0E0, 0E0],
       "sum_hessian": [2E0, 1E0, 1E0]}
    ]}},
  "learner_model_param": {"base_score": "[5E-1]", "boost_from_average": "1", "num_class": "0",
                          "num_feature": "2", "num_target": "1"},
  "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}
}, "version": [3, 2, 0]}"#;

/// A LightGBM binary model with two features, a numerical split, a categorical split and
/// linear leaves.
pub(crate) const LGB_TEXT: &str = "tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:1
feature_names=a b
feature_infos=[-1:1] 0:1:3
tree_sizes=200 200

Tree=0
num_leaves=3
num_cat=1
split_feature=0 1
split_gain=1 1
threshold=0.25 0
decision_type=10 9
left_child=-1 -2
right_child=1 -3
leaf_value=-0.5 0.5 0.25
leaf_weight=1 1 1
leaf_count=1 1 1
internal_value=0 0
internal_weight=1 1
internal_count=2 2
cat_boundaries=0 1
cat_threshold=10
is_linear=0
shrinkage=1


Tree=1
num_leaves=2
num_cat=0
split_feature=0
split_gain=1
threshold=-0.5
decision_type=4
left_child=-1
right_child=-2
leaf_value=0.125 -0.125
leaf_weight=1 1
leaf_count=1 1
internal_value=0
internal_weight=1
internal_count=2
is_linear=1
leaf_const=0.5 -0.5
num_features=1 0
leaf_features=1  
leaf_coeff=0.25  
shrinkage=1


end of trees

feature_importances:
a=2
b=1

parameters:
[boosting: gbdt]
[objective: binary]
end of parameters

pandas_categorical:null
";

using RetriBooru.Settings;
using System.ComponentModel;
using System.Text.Json.Serialization;

namespace RetriBooru.Settings;

/// <summary>The reference-conditioned models the workbench trains and compares.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ModelKind>)), TypeConverter(typeof(WordConverter<ModelKind>)), Word("model", "retrinet, controlnet, ipadapter or text-only")]
public enum ModelKind
{
    [JsonStringEnumMemberName("retrinet")] RetriNet,
    [JsonStringEnumMemberName("controlnet")] ControlNet,
    [JsonStringEnumMemberName("ipadapter")] IpAdapter,
    [JsonStringEnumMemberName("text-only")] TextOnly,
}

/// <summary>Where a training example's references come from.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ReferenceScheme>)), TypeConverter(typeof(WordConverter<ReferenceScheme>)), Word("scheme", "a (same-image crops, leakage study only) or b (other images)")]
public enum ReferenceScheme
{
    /// <summary>Crops of the target itself (the leaky scheme the paper argues against; leakage study only).</summary>
    [JsonStringEnumMemberName("a")] A,
    /// <summary>Other images of the same identity (leakage-free).</summary>
    [JsonStringEnumMemberName("b")] B,
}

/// <summary>Which reference sets a model is evaluated on.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<EvaluationSplit>)), TypeConverter(typeof(WordConverter<EvaluationSplit>)), Word("split", "seen, unseen or composition")]
public enum EvaluationSplit
{
    /// <summary>Held-out images of seen characters (manifest split <c>heldout</c>).</summary>
    [JsonStringEnumMemberName("seen")] Seen,
    /// <summary>Characters never trained on (manifest split <c>unseen</c>).</summary>
    [JsonStringEnumMemberName("unseen")] Unseen,
    /// <summary>Face references of one outfit + clothes references of another outfit of a seen character.</summary>
    [JsonStringEnumMemberName("composition")] Composition,
}

/// <summary>The prompt a model is trained or sampled with.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PromptView>)), TypeConverter(typeof(WordConverter<PromptView>)), Word("view", "full or context")]
public enum PromptView
{
    /// <summary>The target's whole tag prompt (the paper).</summary>
    [JsonStringEnumMemberName("full")] Full,
    /// <summary>Character, hair, eye and clothing tags removed: identity only from the references.</summary>
    [JsonStringEnumMemberName("context")] Context,
}

/// <summary>After warm-up, how the learning rate moves.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LearningRateSchedule>)), TypeConverter(typeof(WordConverter<LearningRateSchedule>)), Word("learning-rate schedule", "constant or cosine")]
public enum LearningRateSchedule
{
    [JsonStringEnumMemberName("constant")] Constant,
    /// <summary>Half a cosine from the learning rate down to 0 at the last step.</summary>
    [JsonStringEnumMemberName("cosine")] Cosine,
}

/// <summary>What the denoiser outputs (diffusers' <c>prediction_type</c>; the spellings are the config file's).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PredictionType>)), TypeConverter(typeof(WordConverter<PredictionType>)), Word("prediction type", "epsilon, v_prediction or sample")]
public enum PredictionType
{
    /// <summary>The added noise (SD 1.5).</summary>
    [JsonStringEnumMemberName("epsilon")] Epsilon,
    /// <summary>v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans and Ho).</summary>
    [JsonStringEnumMemberName("v_prediction")] VPrediction,
    /// <summary>The clean image x0 itself (the tiny pixel-space models).</summary>
    [JsonStringEnumMemberName("sample")] Sample,
}

/// <summary>How the noise levels rise over the training timesteps (diffusers' <c>beta_schedule</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BetaSchedule>)), TypeConverter(typeof(WordConverter<BetaSchedule>)), Word("beta schedule", "scaled_linear, linear or squaredcos_cap_v2")]
public enum BetaSchedule
{
    /// <summary>SD's schedule, made for latents.</summary>
    [JsonStringEnumMemberName("scaled_linear")] ScaledLinear,
    /// <summary>DDPM's.</summary>
    [JsonStringEnumMemberName("linear")] Linear,
    /// <summary>The cosine schedule of Nichol and Dhariwal, made for pixels.</summary>
    [JsonStringEnumMemberName("squaredcos_cap_v2")] SquaredCosCapV2,
}

/// <summary>How DDIM picks its timesteps (diffusers' <c>timestep_spacing</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TimestepSpacing>)), TypeConverter(typeof(WordConverter<TimestepSpacing>)), Word("timestep spacing", "leading, trailing or linspace")]
public enum TimestepSpacing
{
    /// <summary>SD's default: the first step is below T.</summary>
    [JsonStringEnumMemberName("leading")] Leading,
    /// <summary>Starts at T - 1; pairs with zero terminal SNR.</summary>
    [JsonStringEnumMemberName("trailing")] Trailing,
    [JsonStringEnumMemberName("linspace")] Linspace,
}

/// <summary>What a reference shows; its word is also the text the model reads beside the reference image.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Concept>)), TypeConverter(typeof(WordConverter<Concept>)), Word("concept word", "face or clothes")]
public enum Concept
{
    [JsonStringEnumMemberName("face")] Face,
    [JsonStringEnumMemberName("clothes")] Clothes,
}

/// <summary>Where in a generated image (which has no face box) each concept is compared with its references.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<IdentityView>)), TypeConverter(typeof(WordConverter<IdentityView>)), Word("identity view", "best-window or whole")]
public enum IdentityView
{
    /// <summary>The whole image for both concepts.</summary>
    [JsonStringEnumMemberName("whole")] Whole,
    /// <summary>The window (of 14) whose embedding is closest to that concept's references.</summary>
    [JsonStringEnumMemberName("best-window")] BestWindow,
}

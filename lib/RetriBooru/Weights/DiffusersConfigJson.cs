using RetriBooru.Settings;
using System.Text.Json;
using System.Text.Json.Nodes;
using RetriBooru.Modeling;
using RetriBooru.Modeling.Clip;
using RetriBooru.Runtime;

namespace RetriBooru.Weights;

/// <summary>
/// Reads and writes the <c>config.json</c> files of a diffusers folder, and reads a transformers CLIP checkpoint's
/// (diffusers / transformers field names). Every size is bounded (<see cref="ConfigBounds"/>) before it is returned.
/// </summary>
public static class DiffusersConfigJson
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static string Write(UNetConfig c)
    {
        var o = new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["sample_size"] = c.SampleSize,
            ["in_channels"] = c.InChannels,
            ["out_channels"] = c.OutChannels,
            ["block_out_channels"] = new JsonArray(c.BlockOutChannels.Select(v => (JsonNode)v).ToArray()),
            ["down_block_types"] = new JsonArray(c.DownBlockTypes.Select(v => (JsonNode)v).ToArray()),
            ["up_block_types"] = new JsonArray(c.UpBlockTypes.Select(v => (JsonNode)v).ToArray()),
            ["layers_per_block"] = c.LayersPerBlock,
            ["attention_head_dim"] = c.AttentionHeads,
            ["cross_attention_dim"] = c.CrossAttentionDim,
            ["norm_num_groups"] = c.NormNumGroups,
            ["norm_eps"] = c.NormEps,
            ["use_linear_projection"] = c.UseLinearProjection,
            ["flip_sin_to_cos"] = c.FlipSinToCos,
            ["freq_shift"] = c.FreqShift,
            ["act_fn"] = "silu",
            ["mid_block_type"] = "UNetMidBlock2DCrossAttn",
        };
        // Written only when set, so the config of every earlier model reads and writes unchanged.
        if (c.AdditionEmbedType is { } addition) o["addition_embed_type"] = addition;
        return o.ToJsonString(Indented);
    }

    public static string Write(VaeConfig c) => new JsonObject
    {
        ["_class_name"] = "AutoencoderKL",
        ["in_channels"] = c.InChannels,
        ["out_channels"] = c.OutChannels,
        ["latent_channels"] = c.LatentChannels,
        ["block_out_channels"] = new JsonArray(c.BlockOutChannels.Select(v => (JsonNode)v).ToArray()),
        ["down_block_types"] = new JsonArray(c.BlockOutChannels.Select(_ => (JsonNode)"DownEncoderBlock2D").ToArray()),
        ["up_block_types"] = new JsonArray(c.BlockOutChannels.Select(_ => (JsonNode)"UpDecoderBlock2D").ToArray()),
        ["layers_per_block"] = c.LayersPerBlock,
        ["norm_num_groups"] = c.NormNumGroups,
        ["sample_size"] = c.SampleSize,
        ["scaling_factor"] = c.ScalingFactor,
        ["act_fn"] = "silu",
    }.ToJsonString(Indented);

    public static string Write(TextEncoderConfig c) => new JsonObject
    {
        ["architectures"] = new JsonArray("CLIPTextModel"),
        ["model_type"] = "clip_text_model",
        ["vocab_size"] = c.VocabSize,
        ["hidden_size"] = c.HiddenSize,
        ["intermediate_size"] = c.IntermediateSize,
        ["num_hidden_layers"] = c.NumHiddenLayers,
        ["num_attention_heads"] = c.NumAttentionHeads,
        ["max_position_embeddings"] = c.MaxPositionEmbeddings,
        ["hidden_act"] = c.HiddenAct,
        ["layer_norm_eps"] = c.LayerNormEps,
        ["projection_dim"] = c.ProjectionDim,
        ["eos_token_id"] = c.EosTokenId,
    }.ToJsonString(Indented);

    public static string Write(ScheduleConfig c) => new JsonObject
    {
        ["_class_name"] = "DDIMScheduler",
        ["num_train_timesteps"] = c.NumTrainTimesteps,
        ["beta_start"] = c.BetaStart,
        ["beta_end"] = c.BetaEnd,
        ["beta_schedule"] = c.BetaSchedule.Name(),
        ["prediction_type"] = c.PredictionType.Name(),
        ["steps_offset"] = c.StepsOffset,
        ["clip_sample"] = c.ClipSample,
        ["set_alpha_to_one"] = c.SetAlphaToOne,
        ["rescale_betas_zero_snr"] = c.RescaleBetasZeroSnr,
        ["timestep_spacing"] = c.TimestepSpacing.Name(),
        ["sigma_data"] = c.SigmaData,
    }.ToJsonString(Indented);

    /// <summary>A config file as a JSON object: a regular file of bounded size, UTF-8, valid JSON.</summary>
    internal static JsonObject Read(string path)
    {
        var text = RegularFile.ReadAllText(path, "config file");
        try { return JsonNode.Parse(text) as JsonObject ?? throw new JsonException("the top level is not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a valid config ({e.Message})", e); }
    }

    static string Describe(Type type) =>
        type == typeof(int) ? "an integer in the 32-bit range" : type == typeof(double) ? "a number" : type == typeof(bool) ? "true or false" : type == typeof(string) ? "a string" : type.Name;

    static T Get<T>(JsonObject o, string name, T fallback, string path)
    {
        if (!o.TryGetPropertyValue(name, out var node) || node is null) return fallback;
        try { return node.GetValue<T>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
        {
            throw new InvalidDataException($"{path}: field '{name}' is {node.ToJsonString()}, not {Describe(typeof(T))}");
        }
    }

    /// <summary>A domain word (prediction type, schedule, ...) spelled as diffusers spells it; anything else is one line naming the file and field.</summary>
    static T GetWord<T>(JsonObject o, string name, T fallback, string path) where T : struct, Enum
    {
        var text = Get<string?>(o, name, null, path);
        if (text is null) return fallback;
        return Words.TryParse<T>(text, out var value) ? value : throw new InvalidDataException($"{path}: field '{name}': {Words.Unknown<T>(text)}");
    }

    static T[] GetArray<T>(JsonObject o, string name, T[] fallback, string path)
    {
        if (!o.TryGetPropertyValue(name, out var node) || node is null) return fallback;
        if (node is not JsonArray array) throw new InvalidDataException($"{path}: field '{name}' is not an array");
        if (array.Count > SizeLimits.MaxLevels) throw new InvalidDataException($"{path}: field '{name}' has {array.Count} entries; at most {SizeLimits.MaxLevels} are allowed");
        try { return array.Select(n => n!.GetValue<T>()).ToArray(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or NullReferenceException)
        {
            throw new InvalidDataException($"{path}: field '{name}' has entries that are not {Describe(typeof(T))}");
        }
    }

    static T Checked<T>(T config, Action<T, string> check, string path)
    {
        check(config, path);
        return config;
    }

    public static UNetConfig ReadUnet(string path)
    {
        var o = Read(path);
        var d = new UNetConfig();
        // SD1.x configs put the head count in attention_head_dim (one number, or one per level); num_attention_heads (when set) takes precedence.
        var headsField = o["num_attention_heads"] is JsonValue ? "num_attention_heads" : "attention_head_dim";
        var headCounts = o[headsField] is JsonArray ? GetArray(o, headsField, [d.AttentionHeads], path) : [Get(o, headsField, d.AttentionHeads, path)];
        if (headCounts.Distinct().Count() != 1) throw new InvalidDataException($"{path}: field '{headsField}' must give one head count for every level, got [{string.Join(", ", headCounts)}]");
        int heads = SizeLimits.Require(headCounts[0], 1, SizeLimits.MaxAttentionHeads, path, headsField);
        var config = new UNetConfig
        {
            SampleSize = Get(o, "sample_size", d.SampleSize, path),
            InChannels = Get(o, "in_channels", d.InChannels, path),
            OutChannels = Get(o, "out_channels", d.OutChannels, path),
            BlockOutChannels = GetArray(o, "block_out_channels", d.BlockOutChannels, path),
            DownBlockTypes = GetArray(o, "down_block_types", d.DownBlockTypes, path),
            UpBlockTypes = GetArray(o, "up_block_types", d.UpBlockTypes, path),
            LayersPerBlock = Get(o, "layers_per_block", d.LayersPerBlock, path),
            AttentionHeads = heads,
            CrossAttentionDim = Get(o, "cross_attention_dim", d.CrossAttentionDim, path),
            NormNumGroups = Get(o, "norm_num_groups", d.NormNumGroups, path),
            NormEps = Get(o, "norm_eps", d.NormEps, path),
            UseLinearProjection = Get(o, "use_linear_projection", d.UseLinearProjection, path),
            FlipSinToCos = Get(o, "flip_sin_to_cos", d.FlipSinToCos, path),
            FreqShift = Get(o, "freq_shift", d.FreqShift, path),
            AdditionEmbedType = o["addition_embed_type"] is JsonValue addition && addition.TryGetValue<string>(out var type) ? type : null,
        };
        ConfigBounds.Check(config, path);
        return config;
    }

    public static VaeConfig ReadVae(string path)
    {
        var o = Read(path);
        var d = new VaeConfig();
        return Checked(new VaeConfig
        {
            InChannels = Get(o, "in_channels", d.InChannels, path),
            OutChannels = Get(o, "out_channels", d.OutChannels, path),
            LatentChannels = Get(o, "latent_channels", d.LatentChannels, path),
            BlockOutChannels = GetArray(o, "block_out_channels", d.BlockOutChannels, path),
            LayersPerBlock = Get(o, "layers_per_block", d.LayersPerBlock, path),
            NormNumGroups = Get(o, "norm_num_groups", d.NormNumGroups, path),
            SampleSize = Get(o, "sample_size", d.SampleSize, path),
            ScalingFactor = Get(o, "scaling_factor", d.ScalingFactor, path),
        }, ConfigBounds.Check, path);
    }

    /// <summary>An SD <c>text_encoder/config.json</c> (transformers' CLIPTextConfig; absent fields default to SD1.5's text encoder).</summary>
    public static TextEncoderConfig ReadTextEncoder(string path) => ReadTextEncoder(Read(path), path, new TextEncoderConfig(), "text encoder");

    /// <summary>The CLIPTextConfig fields of <paramref name="o"/>, bounded before anything is built from them.</summary>
    static TextEncoderConfig ReadTextEncoder(JsonObject o, string path, TextEncoderConfig d, string component)
    {
        int vocab = Get(o, "vocab_size", d.VocabSize, path);
        int eos = Get(o, "eos_token_id", d.EosTokenId, path);
        // Older OpenAI configs (SD1.5's among them) say eos_token_id = 2 while the real end token is the vocabulary's
        // last id (HF then pools at the argmax id, which is that token); use the real id.
        if (eos == 2 && vocab == 49408) eos = 49407;
        var config = new TextEncoderConfig
        {
            VocabSize = vocab,
            HiddenSize = Get(o, "hidden_size", d.HiddenSize, path),
            IntermediateSize = Get(o, "intermediate_size", d.IntermediateSize, path),
            NumHiddenLayers = Get(o, "num_hidden_layers", d.NumHiddenLayers, path),
            NumAttentionHeads = Get(o, "num_attention_heads", d.NumAttentionHeads, path),
            MaxPositionEmbeddings = Get(o, "max_position_embeddings", d.MaxPositionEmbeddings, path),
            HiddenAct = Get(o, "hidden_act", d.HiddenAct, path),
            LayerNormEps = Get(o, "layer_norm_eps", d.LayerNormEps, path),
            ProjectionDim = Get(o, "projection_dim", d.ProjectionDim, path),
            EosTokenId = eos,
        };
        ConfigBounds.Check(config, path, component);
        return config;
    }

    /// <summary>
    /// The tower sizes of a transformers CLIP <c>config.json</c>: a CLIPModel (<c>text_config</c> + <c>vision_config</c>)
    /// or a single tower's (<c>model_type</c> clip_text_model / clip_vision_model). transformers omits fields equal to its
    /// defaults (ViT-B/32), so those are the fallbacks; a tower's projection_dim falls back to the top-level one.
    /// </summary>
    public static (ClipVisionConfig? Vision, TextEncoderConfig? Text) ReadClip(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: CLIP config not found", path);
        var root = Read(path);
        var modelType = Get<string?>(root, "model_type", null, path);
        var visionNode = Section(root, "vision_config", path) ?? (modelType == "clip_vision_model" ? root : null);
        var textNode = Section(root, "text_config", path) ?? (modelType == "clip_text_model" ? root : null);
        if (visionNode is null && textNode is null) throw new InvalidDataException($"{path}: neither vision_config nor text_config found (model_type '{modelType}')");
        int projection = Get(root, "projection_dim", 512, path);
        var text = textNode is null ? null : ReadTextEncoder(textNode, path, TextEncoderConfig.VitB with { ProjectionDim = projection }, "CLIP text tower");
        if (visionNode is null) return (null, text);
        var d = new ClipVisionConfig { ProjectionDim = projection };
        var vision = new ClipVisionConfig
        {
            HiddenSize = Get(visionNode, "hidden_size", d.HiddenSize, path),
            IntermediateSize = Get(visionNode, "intermediate_size", d.IntermediateSize, path),
            NumHiddenLayers = Get(visionNode, "num_hidden_layers", d.NumHiddenLayers, path),
            NumAttentionHeads = Get(visionNode, "num_attention_heads", d.NumAttentionHeads, path),
            ImageSize = Get(visionNode, "image_size", d.ImageSize, path),
            PatchSize = Get(visionNode, "patch_size", d.PatchSize, path),
            ProjectionDim = Get(visionNode, "projection_dim", d.ProjectionDim, path),
            HiddenAct = Get(visionNode, "hidden_act", d.HiddenAct, path),
            LayerNormEps = Get(visionNode, "layer_norm_eps", d.LayerNormEps, path),
        };
        ConfigBounds.Check(vision, path);
        return (vision, text);
    }

    static JsonObject? Section(JsonObject o, string name, string path) =>
        !o.TryGetPropertyValue(name, out var node) || node is null ? null
            : node as JsonObject ?? throw new InvalidDataException($"{path}: field '{name}' is {node.ToJsonString()}, not an object");

    public static ScheduleConfig ReadSchedule(string path)
    {
        var o = Read(path);
        var d = new ScheduleConfig();
        return Checked(new ScheduleConfig
        {
            NumTrainTimesteps = Get(o, "num_train_timesteps", d.NumTrainTimesteps, path),
            BetaStart = Get(o, "beta_start", d.BetaStart, path),
            BetaEnd = Get(o, "beta_end", d.BetaEnd, path),
            BetaSchedule = GetWord(o, "beta_schedule", d.BetaSchedule, path),
            PredictionType = GetWord(o, "prediction_type", d.PredictionType, path),
            StepsOffset = Get(o, "steps_offset", d.StepsOffset, path),
            ClipSample = Get(o, "clip_sample", d.ClipSample, path),
            SetAlphaToOne = Get(o, "set_alpha_to_one", d.SetAlphaToOne, path),
            RescaleBetasZeroSnr = Get(o, "rescale_betas_zero_snr", d.RescaleBetasZeroSnr, path),
            TimestepSpacing = GetWord(o, "timestep_spacing", d.TimestepSpacing, path),
            SigmaData = Get(o, "sigma_data", d.SigmaData, path),
        }, ConfigBounds.Check, path);
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using RetriBooru.Modeling;
using RetriBooru.Runtime;

namespace RetriBooru.Weights;

/// <summary>Reads and writes the <c>config.json</c> files of a diffusers folder (diffusers / transformers field names).</summary>
public static class DiffusersConfigJson
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static string Write(UNetConfig c) => new JsonObject
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
    }.ToJsonString(Indented);

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
    }.ToJsonString(Indented);

    public static string Write(ScheduleConfig c) => new JsonObject
    {
        ["_class_name"] = "DDIMScheduler",
        ["num_train_timesteps"] = c.NumTrainTimesteps,
        ["beta_start"] = c.BetaStart,
        ["beta_end"] = c.BetaEnd,
        ["beta_schedule"] = c.BetaSchedule,
        ["prediction_type"] = c.PredictionType,
        ["steps_offset"] = c.StepsOffset,
        ["clip_sample"] = c.ClipSample,
        ["set_alpha_to_one"] = c.SetAlphaToOne,
        ["rescale_betas_zero_snr"] = c.RescaleBetasZeroSnr,
        ["timestep_spacing"] = c.TimestepSpacing,
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

    public static TextEncoderConfig ReadTextEncoder(string path)
    {
        var o = Read(path);
        var d = new TextEncoderConfig();
        return Checked(new TextEncoderConfig
        {
            VocabSize = Get(o, "vocab_size", d.VocabSize, path),
            HiddenSize = Get(o, "hidden_size", d.HiddenSize, path),
            IntermediateSize = Get(o, "intermediate_size", d.IntermediateSize, path),
            NumHiddenLayers = Get(o, "num_hidden_layers", d.NumHiddenLayers, path),
            NumAttentionHeads = Get(o, "num_attention_heads", d.NumAttentionHeads, path),
            MaxPositionEmbeddings = Get(o, "max_position_embeddings", d.MaxPositionEmbeddings, path),
            HiddenAct = Get(o, "hidden_act", d.HiddenAct, path),
            LayerNormEps = Get(o, "layer_norm_eps", d.LayerNormEps, path),
        }, ConfigBounds.Check, path);
    }

    public static ScheduleConfig ReadSchedule(string path)
    {
        var o = Read(path);
        var d = new ScheduleConfig();
        return Checked(new ScheduleConfig
        {
            NumTrainTimesteps = Get(o, "num_train_timesteps", d.NumTrainTimesteps, path),
            BetaStart = Get(o, "beta_start", d.BetaStart, path),
            BetaEnd = Get(o, "beta_end", d.BetaEnd, path),
            BetaSchedule = Get(o, "beta_schedule", d.BetaSchedule, path),
            PredictionType = Get(o, "prediction_type", d.PredictionType, path),
            StepsOffset = Get(o, "steps_offset", d.StepsOffset, path),
            ClipSample = Get(o, "clip_sample", d.ClipSample, path),
            SetAlphaToOne = Get(o, "set_alpha_to_one", d.SetAlphaToOne, path),
            RescaleBetasZeroSnr = Get(o, "rescale_betas_zero_snr", d.RescaleBetasZeroSnr, path),
            TimestepSpacing = Get(o, "timestep_spacing", d.TimestepSpacing, path),
            SigmaData = Get(o, "sigma_data", d.SigmaData, path),
        }, ConfigBounds.Check, path);
    }
}
